//! The product cache across instances: a catalogue change through A (edit, new product,
//! deletion) reaches B's cached reads by NOTIFY, and stock taken by an order through A
//! (announced to no one) by the cache's age bound; each within the contract's 100 ms,
//! by id and in a list page.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::instance::{eventually, listening, Fleet, Instance};

/// The contract's bound for a change to reach every instance.
const FLEET_BOUND: Duration = Duration::from_millis(100);

/// How long a test waits for something that should take far less.
const PATIENCE: Duration = Duration::from_secs(15);

/// `GET path` on `instance`: status and body.
async fn read(instance: &Instance, path: &str) -> (u16, Value) {
    let res = instance.get(path).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The (name, stock) pairs of a list page.
fn rows(page: &Value) -> Vec<(String, i64)> {
    page["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["name"].as_str().unwrap().to_string(),
                        p["stock"].as_i64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `path` on `b` until `seen` holds; asserts the first request that saw it was
/// sent within [`FLEET_BOUND`] of `acked`.
async fn seen_within_bound(
    b: &Instance,
    what: &str,
    path: &str,
    acked: Instant,
    seen: impl Fn(u16, &Value) -> bool,
) {
    let (sent, _) = eventually(what, PATIENCE, || async {
        let sent = Instant::now();
        let (status, body) = read(b, path).await;
        seen(status, &body).then_some(sent)
    })
    .await;
    let took = sent.saturating_duration_since(acked);
    eprintln!("{what}: on B after {took:?}");
    assert!(took <= FLEET_BOUND, "{what}: reached B after {took:?}");
}

#[tokio::test]
async fn product_changes_through_one_instance_reach_the_other_within_100ms() {
    let fleet = Fleet::start(2).await;
    let (a, b) = (fleet.get(0), fleet.get(1));
    listening(a).await;
    listening(b).await;
    let admin = a.admin().await;
    let buyer = a.new_user().await;
    let mark = Uuid::new_v4().simple().to_string();
    let list = format!("/api/v1/products?q={mark}&sort=name&limit=100");
    let create = |name: &str, stock: i64| {
        a.authed(Method::POST, "/api/v1/products", &admin.token)
            .json(&json!({
                "sku": format!("{name}-{}", &mark[..8]), "name": format!("{name} {mark}"),
                "price_cents": 100, "currency": "EUR", "stock": stock,
            }))
    };
    let res = create("Lamp", 10).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let lamp: Value = res.json().await.unwrap();
    let lamp_path = format!("/api/v1/products/{}", lamp["id"].as_str().unwrap());
    let name = |n: &str| format!("{n} {mark}");

    // B serves (and caches) the product and the page, repeatedly.
    for _ in 0..3 {
        assert_eq!(read(b, &lamp_path).await.1["stock"], 10);
        assert_eq!(rows(&read(b, &list).await.1), [(name("Lamp"), 10)]);
    }

    // An edit through A (announced by NOTIFY).
    let res = a
        .authed(Method::PATCH, &lamp_path, &admin.token)
        .header("content-type", "application/merge-patch+json")
        .body(json!({ "name": name("Desk lamp") }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let acked = Instant::now();
    seen_within_bound(b, "an edit, by id", &lamp_path, acked, |s, p| {
        s == 200 && p["name"] == name("Desk lamp")
    })
    .await;
    seen_within_bound(b, "an edit, in a list page", &list, acked, |s, p| {
        s == 200 && rows(p) == [(name("Desk lamp"), 10)]
    })
    .await;

    // Stock taken by an order through A (not announced: the age bound).
    read(b, &lamp_path).await;
    read(b, &list).await;
    let res = a
        .authed(Method::POST, "/api/v1/orders", &buyer.token)
        .header("idempotency-key", Uuid::new_v4().to_string())
        .json(&json!({"items": [{"product_id": lamp["id"], "quantity": 3}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let acked = Instant::now();
    seen_within_bound(b, "an order's stock, by id", &lamp_path, acked, |s, p| {
        s == 200 && p["stock"] == 7
    })
    .await;
    seen_within_bound(
        b,
        "an order's stock, in a list page",
        &list,
        acked,
        |s, p| s == 200 && rows(p) == [(name("Desk lamp"), 7)],
    )
    .await;

    // A new product through A, in B's page.
    read(b, &list).await;
    let res = create("Bowl", 2).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let acked = Instant::now();
    seen_within_bound(b, "a new product, in a list page", &list, acked, |s, p| {
        s == 200 && rows(p) == [(name("Bowl"), 2), (name("Desk lamp"), 7)]
    })
    .await;

    // A deletion through A: B answers 404 and leaves it out of the page.
    read(b, &lamp_path).await;
    read(b, &list).await;
    let res = a
        .authed(Method::DELETE, &lamp_path, &admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let acked = Instant::now();
    seen_within_bound(b, "a deletion, by id", &lamp_path, acked, |s, _| s == 404).await;
    seen_within_bound(b, "a deletion, in a list page", &list, acked, |s, p| {
        s == 200 && rows(p) == [(name("Bowl"), 2)]
    })
    .await;

    // B answered from its caches along the way.
    for cache in ["products", "product_lists"] {
        let hits = b
            .metric(&format!("bulkhead_cache_hits_total{{cache=\"{cache}\"}}"))
            .await
            .unwrap_or(0.0);
        assert!(hits >= 1.0, "{cache}: {hits} hits on B");
    }
}
