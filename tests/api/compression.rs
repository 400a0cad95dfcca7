//! Response compression over HTTP: a client that accepts gzip gets large bodies gzipped
//! (with `Vary`) and small ones as they are (`server.compress_min_bytes`), never a
//! `Content-Encoding: identity`; a cached product page's gzipped copy is the page, and
//! goes with it when a product changes.

use std::io::Read;

use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING, VARY};
use reqwest::{Method, Response};
use serde_json::Value;

use crate::helpers::shop::{create_product, product_body};
use crate::helpers::{spawn_app_with, StoreKind, TestApp};

async fn get_gzip(app: &TestApp, path: &str, token: Option<&str>) -> Response {
    let req = match token {
        Some(t) => app.authed(Method::GET, path, t),
        None => app.request(Method::GET, path),
    };
    req.header(ACCEPT_ENCODING, "gzip").send().await.unwrap()
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .expect("a gzip stream");
    out
}

/// An app with a page of products whose list is several kilobytes.
async fn app_with_products(min_bytes: usize) -> (TestApp, String) {
    app_with_products_on(StoreKind::Memory, min_bytes, true).await
}

async fn app_with_products_on(kind: StoreKind, min_bytes: usize, cache: bool) -> (TestApp, String) {
    let app = spawn_app_with(kind, |c| {
        c.server.compress_min_bytes = min_bytes;
        c.cache.products.enabled = cache;
    })
    .await;
    let admin = app.admin().await;
    for i in 0..20 {
        let body = product_body(&format!("SKU-{i}"), &format!("Product {i}"), 100, "EUR", 5);
        create_product(&app, &admin.token, &body).await;
    }
    (app, admin.token)
}

#[actix_web::test]
async fn large_bodies_are_gzipped_and_small_ones_sent_as_they_are() {
    let (app, token) = app_with_products(1400).await;

    let plain = app.get("/api/v1/products").await;
    assert_eq!(plain.status(), 200);
    assert!(!plain.headers().contains_key(CONTENT_ENCODING));
    let plain = plain.bytes().await.unwrap();
    let plain_len = plain.len();
    assert!(plain_len > 1400, "the list is {plain_len} bytes");

    let list = get_gzip(&app, "/api/v1/products", None).await;
    assert_eq!(list.status(), 200);
    assert_eq!(list.headers()[CONTENT_ENCODING], "gzip");
    assert!(list.headers()[VARY]
        .to_str()
        .unwrap()
        .to_ascii_lowercase()
        .contains("accept-encoding"));
    let gz = list.bytes().await.unwrap();
    assert_eq!(gunzip(&gz), plain, "the same page");
    assert!(gz.len() < plain_len);

    // Small bodies: a 200, a problem (404), a refusal (401): no encoding at all.
    let me = get_gzip(&app, "/api/v1/users/me", Some(&token)).await;
    let missing = get_gzip(
        &app,
        &format!("/api/v1/products/{}", uuid::Uuid::new_v4()),
        None,
    )
    .await;
    let anonymous = get_gzip(&app, "/api/v1/users/me", None).await;
    for (res, status) in [(me, 200), (missing, 404), (anonymous, 401)] {
        assert_eq!(res.status(), status);
        assert!(
            !res.headers().contains_key(CONTENT_ENCODING),
            "{status}: {:?}",
            res.headers().get(CONTENT_ENCODING)
        );
        assert!(!res.headers().contains_key(VARY), "{status}");
        let body: Value = res.json().await.expect("plain JSON");
        assert!(body.is_object());
    }
}

#[actix_web::test]
async fn the_threshold_is_the_operators() {
    // Nothing is worth compressing: the list goes out plain too.
    let (app, _) = app_with_products(1 << 20).await;
    let res = get_gzip(&app, "/api/v1/products", None).await;
    assert_eq!(res.status(), 200);
    assert!(!res.headers().contains_key(CONTENT_ENCODING));
    let _: Value = res.json().await.expect("plain JSON");

    // Everything is: even /health's 15 bytes.
    let app = spawn_app_with(StoreKind::Memory, |c| c.server.compress_min_bytes = 0).await;
    let res = get_gzip(&app, "/health", None).await;
    assert_eq!(res.headers()[CONTENT_ENCODING], "gzip");
}

/// `path` as a client that accepts gzip reads it, gunzipped.
async fn read(app: &TestApp, path: &str) -> Vec<u8> {
    let res = get_gzip(app, path, None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()[CONTENT_ENCODING], "gzip");
    gunzip(&res.bytes().await.unwrap())
}

/// The gzipped copy of a cached page is the page: the same bytes again while the page
/// is cached, and the new page (not the old copy) once a product changes; on Postgres
/// with the product cache on and off.
async fn gzip_follows_the_page(kind: StoreKind, cache: bool) {
    let (app, token) = app_with_products_on(kind, 1400, cache).await;
    let path = "/api/v1/products?sort=name&limit=30";
    let first = read(&app, path).await;
    let plain = app.get(path).await.bytes().await.unwrap();
    assert_eq!(first, plain);
    assert_eq!(read(&app, path).await, first, "the same page again");

    let body = product_body("SKU-NEW", "AAA first by name", 100, "EUR", 5);
    create_product(&app, &token, &body).await;
    let after: Value = serde_json::from_slice(&read(&app, path).await).unwrap();
    assert_eq!(
        after["data"][0]["name"], "AAA first by name",
        "not the old copy"
    );
    let plain: Value = app.get(path).await.json().await.unwrap();
    assert_eq!(after, plain);
}

#[actix_web::test]
async fn gzip_follows_the_cached_page_on_postgres() {
    gzip_follows_the_page(StoreKind::Postgres, true).await;
}

#[actix_web::test]
async fn gzip_is_made_per_request_without_the_cache() {
    gzip_follows_the_page(StoreKind::Postgres, false).await;
}

/// Any large body in memory (here the admin's user list, which no cache holds) is
/// gzipped for a client that accepts it, and is the body a client without gzip gets.
#[actix_web::test]
async fn an_uncached_list_is_gzipped_on_the_way_out() {
    let app = spawn_app_with(StoreKind::Memory, |_| {}).await;
    let admin = app.admin().await;
    for _ in 0..12 {
        app.new_user().await;
    }
    let path = "/api/v1/users?limit=50";
    let plain = app
        .authed(Method::GET, path, &admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    assert!(!plain.headers().contains_key(CONTENT_ENCODING));
    let plain = plain.bytes().await.unwrap();
    assert!(plain.len() > 1400, "the list is {} bytes", plain.len());
    let res = get_gzip(&app, path, Some(&admin.token)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()[CONTENT_ENCODING], "gzip");
    // Gzipped whole, so sent with its length rather than in chunks.
    assert!(res.headers().contains_key(reqwest::header::CONTENT_LENGTH));
    assert_eq!(gunzip(&res.bytes().await.unwrap()), plain);
}
