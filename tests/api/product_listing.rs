//! `GET /api/v1/products`: filters, sorts, cursors, and pages under concurrent inserts.

use std::collections::HashSet;

use crate::both_stores;
use crate::helpers::shop::{create_product, product_body};
use crate::helpers::{problem, TestApp};
use serde_json::Value;

pub async fn list(app: &TestApp, query: &str) -> Value {
    let res = app.get(&format!("/api/v1/products?{query}")).await;
    assert_eq!(res.status(), 200, "{query}");
    res.json().await.unwrap()
}

fn names(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

async fn filters_and_sorts(app: &TestApp) {
    let admin = app.admin().await;
    let t = &admin.token;
    for (sku, name, price) in [
        ("P1", "Red Lamp", 500),
        ("P2", "blue lamp", 1500),
        ("P3", "100% cotton", 2500),
        ("P4", "1000 cotton", 3500),
        ("P5", "snake_case", 4500),
        ("P6", "snakeXcase", 5500),
    ] {
        create_product(app, t, &product_body(sku, name, price, "EUR", 1)).await;
    }
    // Default: newest first.
    assert_eq!(
        names(&list(app, "").await),
        [
            "snakeXcase",
            "snake_case",
            "1000 cotton",
            "100% cotton",
            "blue lamp",
            "Red Lamp"
        ]
    );
    assert_eq!(list(app, "").await["next_cursor"], Value::Null);
    assert_eq!(
        names(
            &list(
                app,
                "sort=price_cents&min_price_cents=1500&max_price_cents=3500"
            )
            .await
        ),
        ["blue lamp", "100% cotton", "1000 cotton"]
    );
    assert_eq!(
        names(&list(app, "sort=-price_cents&max_price_cents=1500").await),
        ["blue lamp", "Red Lamp"]
    );
    // q is a case-insensitive substring, with LIKE wildcards taken literally.
    assert_eq!(
        names(&list(app, "q=LAMP&sort=name").await),
        ["Red Lamp", "blue lamp"]
    );
    assert_eq!(names(&list(app, "q=0%25&sort=name").await), ["100% cotton"]);
    assert_eq!(names(&list(app, "q=e_c").await), ["snake_case"]);
    assert_eq!(names(&list(app, "q=%5C").await).len(), 0);
    assert_eq!(
        names(&list(app, "sort=-name").await),
        [
            "snake_case",
            "snakeXcase",
            "blue lamp",
            "Red Lamp",
            "1000 cotton",
            "100% cotton"
        ]
    );
    let page = list(app, "sort=price_cents&limit=4").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 4);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let rest = list(app, &format!("sort=price_cents&limit=4&cursor={cursor}")).await;
    assert_eq!(names(&rest), ["snake_case", "snakeXcase"]);
    assert_eq!(rest["next_cursor"], Value::Null);

    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("cursor=garbage", "cursor"),
        (&format!("cursor={cursor}&sort=name"), "cursor"),
        ("sort=stock", "sort"),
        ("min_price_cents=abc", "min_price_cents"),
        ("max_price_cents=-1", "max_price_cents"),
        ("colour=red", "colour"),
    ] {
        let res = app.get(&format!("/api/v1/products?{query}")).await;
        let b = problem(res, 400, "invalid_parameter").await;
        assert_eq!(b["errors"][0]["field"], param, "{query}");
    }
}
both_stores!(products_filters_and_sorts, filters_and_sorts);

/// Walk every page of every sort while new products are inserted: each product that
/// existed before the walk is seen exactly once, and no row is ever served twice.
async fn pages_under_concurrent_inserts(app: &TestApp) {
    let admin = app.admin().await;
    let t = admin.token.clone();
    let mut before = HashSet::new();
    for i in 0..30 {
        // Prices and names repeat, so ties are broken by id.
        let body = product_body(
            &format!("SEED-{i}"),
            &format!("item {}", i % 4),
            (i % 5) * 100,
            "EUR",
            1,
        );
        before.insert(
            create_product(app, &t, &body).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    for sort in [
        "created_at",
        "-created_at",
        "price_cents",
        "-price_cents",
        "name",
        "-name",
    ] {
        let writer = async {
            for i in 0..12 {
                let body = product_body(&format!("NEW-{sort}-{i}"), "item 2", 200, "EUR", 1);
                create_product(app, &t, &body).await;
            }
        };
        let reader = async {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let q = match &cursor {
                    Some(c) => format!("sort={sort}&limit=7&cursor={c}"),
                    None => format!("sort={sort}&limit=7"),
                };
                let page = list(app, &q).await;
                let rows = page["data"].as_array().unwrap();
                assert!(rows.len() <= 7);
                seen.extend(rows.iter().map(|r| r["id"].as_str().unwrap().to_string()));
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_string()),
                    None => break,
                }
            }
            seen
        };
        let ((), seen) = tokio::join!(writer, reader);
        let unique: HashSet<_> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len(), "{sort}: a row was served twice");
        assert!(before.is_subset(&unique), "{sort}: a row was skipped");
    }
}
both_stores!(
    products_pagination_under_inserts,
    pages_under_concurrent_inserts
);
