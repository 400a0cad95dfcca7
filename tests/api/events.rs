//! Domain events (contract, "Events"): every change to a user or an order reaches NATS
//! JetStream as a CloudEvent, through the transactional outbox, on both stores; a change
//! that rolls back writes none; events wait out a NATS outage; one order's events keep
//! their commit order.

use std::collections::{HashMap, HashSet};

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::nats::{kinds_of, Nats, StreamEvent};
use crate::helpers::shop::{create_product, items, new_key, place, product_body};
use crate::helpers::{spawn_app_with, StoreKind, TestApp};

const WITHIN: Duration = Duration::from_secs(20);

pub async fn events_app(kind: StoreKind, nats: &Nats) -> TestApp {
    let url = nats.url();
    spawn_app_with(kind, move |c| {
        c.events.nats_url = Some(bulkhead::config::Secret::new(url));
        c.events.poll_interval_ms = 200;
        c.events.backoff_initial_ms = 50;
        c.events.backoff_max_ms = 300;
        c.events.publish_timeout_ms = 1000;
        c.rate_limits.enabled = false;
    })
    .await
}

fn find<'a>(events: &'a [StreamEvent], kind: &str, id: &str) -> &'a StreamEvent {
    events
        .iter()
        .find(|e| e.kind() == format!("com.bulkhead.{kind}") && e.resource() == id)
        .unwrap_or_else(|| panic!("no {kind} event for {id}"))
}

/// The envelope every event carries, and its JetStream subject and message id.
fn check_envelope(e: &StreamEvent, kind: &str, id: &str) {
    let b = &e.body;
    assert_eq!(b["specversion"], "1.0", "{b}");
    assert_eq!(b["source"], "bulkhead", "{b}");
    assert_eq!(b["type"], format!("com.bulkhead.{kind}"), "{b}");
    assert_eq!(b["subject"], id, "{b}");
    assert_eq!(b["datacontenttype"], "application/json", "{b}");
    let event_id: uuid::Uuid = b["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(event_id.get_version_num(), 7, "{b}");
    assert!(
        chrono::DateTime::parse_from_rfc3339(b["time"].as_str().unwrap()).is_ok(),
        "{b}"
    );
    assert_eq!(e.subject, format!("bulkhead.{kind}"));
    assert_eq!(
        e.msg_id,
        event_id.to_string(),
        "Nats-Msg-Id is the event id: {:?}",
        e.headers
    );
    assert!(
        !b.to_string().contains("password"),
        "no password or hash: {b}"
    );
}

async fn every_type_with_its_payload(kind: StoreKind) {
    let nats = Nats::start();
    let app = events_app(kind, &nats).await;
    let admin = app.admin().await;

    let res = app.register("eve@example.com", "Eve", "password-123").await;
    assert_eq!(res.status(), 201);
    let registered: Value = res.json().await.unwrap();
    let id = registered["id"].as_str().unwrap().to_string();
    let (token, _) = app.tokens("eve@example.com", "password-123").await;
    let res = app
        .authed(Method::PATCH, &format!("/api/v1/users/{id}"), &token)
        .json(&json!({"name": "Eve Two"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let updated: Value = res.json().await.unwrap();
    let lamp = create_product(
        &app,
        &admin.token,
        &product_body("L", "Lamp", 250, "EUR", 9),
    )
    .await;
    let res = place(&app, &token, Some(&new_key()), &items(&[(&lamp, 2)])).await;
    assert_eq!(res.status(), 201);
    let placed: Value = res.json().await.unwrap();
    let order = placed["id"].as_str().unwrap().to_string();
    let res = app
        .authed(
            Method::POST,
            &format!("/api/v1/orders/{order}/cancel"),
            &token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cancelled: Value = res.json().await.unwrap();
    let res = app
        .authed(
            Method::POST,
            &format!("/api/v1/users/{id}/status"),
            &admin.token,
        )
        .json(&json!({"status": "suspended"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let suspended: Value = res.json().await.unwrap();
    let res = app
        .authed(Method::DELETE, &format!("/api/v1/users/{id}"), &admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    // The bootstrap admin's own events come first; wait for the last of ours.
    let events = loop {
        let events = nats.events(6, WITHIN).await;
        if events
            .iter()
            .any(|e| e.kind() == "com.bulkhead.user.deleted")
        {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        kinds_of(&events, &id),
        [
            "user.registered",
            "user.updated",
            "user.status_changed",
            "user.deleted"
        ]
    );
    assert_eq!(
        kinds_of(&events, &order),
        ["order.placed", "order.cancelled"]
    );
    for (kind, subject, data) in [
        ("user.registered", &id, &registered),
        ("user.updated", &id, &updated),
        ("user.status_changed", &id, &suspended),
        ("order.placed", &order, &placed),
        ("order.cancelled", &order, &cancelled),
    ] {
        let e = find(&events, kind, subject);
        check_envelope(e, kind, subject);
        assert_eq!(
            &e.body["data"], data,
            "{kind}'s data is the resource as the API showed it"
        );
    }
    let deleted = find(&events, "user.deleted", &id);
    check_envelope(deleted, "user.deleted", &id);
    let data = &deleted.body["data"];
    assert_eq!(data["id"], id.as_str());
    assert_eq!(data["email"], "eve@example.com");
    assert_eq!(data["status"], "suspended");
    let ids: HashSet<&str> = events.iter().map(|e| e.msg_id.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "every event once");
}

#[actix_web::test]
async fn every_event_type_with_its_payload_postgres() {
    every_type_with_its_payload(StoreKind::Postgres).await;
}

#[actix_web::test]
async fn every_event_type_with_its_payload_memory() {
    every_type_with_its_payload(StoreKind::Memory).await;
}

/// A transaction that fails at COMMIT, after it wrote its order and its event, leaves
/// neither; refused writes (409) write no event either.
#[actix_web::test]
async fn a_rolled_back_change_writes_no_event() {
    let nats = Nats::start();
    let app = events_app(StoreKind::Postgres, &nats).await;
    let admin = app.admin().await;
    let db = app.db().await;
    // Refuse, at commit, any order whose total is 1313 cents: the order, its items and
    // its outbox row are all written by then, so this is a true rollback.
    db.batch_execute(
        "CREATE FUNCTION refuse_1313() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.total_cents = 1313 THEN RAISE EXCEPTION 'refused at commit'; END IF;
         RETURN NEW; END $$;
         CREATE CONSTRAINT TRIGGER refuse_1313 AFTER INSERT ON orders
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_1313();",
    )
    .await
    .unwrap();
    let odd = create_product(
        &app,
        &admin.token,
        &product_body("ODD", "Odd", 1313, "EUR", 5),
    )
    .await;
    let fine = create_product(
        &app,
        &admin.token,
        &product_body("OK", "Fine", 100, "EUR", 5),
    )
    .await;
    let res = place(&app, &admin.token, Some(&new_key()), &items(&[(&odd, 1)])).await;
    assert!(res.status().is_server_error(), "{}", res.status());
    // Refused before any write: too little stock, a taken email.
    let res = place(&app, &admin.token, Some(&new_key()), &items(&[(&fine, 6)])).await;
    assert_eq!(res.status(), 409);
    let res = app
        .register(crate::helpers::ADMIN_EMAIL, "Again", "password-123")
        .await;
    assert_eq!(res.status(), 409);
    // A change that commits afterwards: once its event is out, anything before it is.
    let res = place(&app, &admin.token, Some(&new_key()), &items(&[(&fine, 1)])).await;
    assert_eq!(res.status(), 201);
    let ok: Value = res.json().await.unwrap();
    let ok_id = ok["id"].as_str().unwrap();
    let events = loop {
        let events = nats.events(1, WITHIN).await;
        if events.iter().any(|e| e.resource() == ok_id) {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let placed: Vec<&StreamEvent> = events
        .iter()
        .filter(|e| e.kind() == "com.bulkhead.order.placed")
        .collect();
    assert_eq!(placed.len(), 1, "only the committed order: {placed:?}");
    assert_eq!(placed[0].resource(), ok_id);
    let registered = events
        .iter()
        .filter(|e| e.kind() == "com.bulkhead.user.registered")
        .count();
    assert_eq!(registered, 1, "the bootstrap admin only");
    // And the relay deleted what it published: nothing stays behind.
    let deadline = std::time::Instant::now() + WITHIN;
    loop {
        let left: i64 = db
            .query_one("SELECT count(*) FROM outbox", &[])
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{left} rows stay in the outbox"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Orders cancelled as soon as they are placed, many at once: for every order, placed
/// comes before cancelled in the stream (on both stores).
async fn placed_precedes_cancelled(kind: StoreKind) {
    let nats = Nats::start();
    let app = events_app(kind, &nats).await;
    let admin = app.admin().await;
    let lamp = create_product(
        &app,
        &admin.token,
        &product_body("L", "Lamp", 100, "EUR", 1000),
    )
    .await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (client, base, token, body) = (
            app.client.clone(),
            app.address.clone(),
            admin.token.clone(),
            items(&[(&lamp, 1)]),
        );
        tasks.push(actix_web::rt::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..15 {
                let res = client
                    .post(format!("{base}/api/v1/orders"))
                    .bearer_auth(&token)
                    .header("idempotency-key", new_key())
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 201);
                let id = res.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let res = client
                    .post(format!("{base}/api/v1/orders/{id}/cancel"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                ids.push(id);
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    let events = nats.events(1 + 2 * ids.len(), WITHIN).await;
    assert_in_order(&events, &ids);
}

/// For every order of `ids`: exactly one placed, then exactly one cancelled.
pub fn assert_in_order(events: &[StreamEvent], ids: &[String]) {
    let mut by_order: HashMap<&str, Vec<&str>> = HashMap::new();
    for e in events {
        by_order
            .entry(e.resource())
            .or_default()
            .push(e.kind().trim_start_matches("com.bulkhead."));
    }
    for id in ids {
        assert_eq!(
            by_order.get(id.as_str()).map(Vec::as_slice),
            Some(&["order.placed", "order.cancelled"][..]),
            "events of order {id}"
        );
    }
}

#[actix_web::test]
async fn placed_precedes_cancelled_postgres() {
    placed_precedes_cancelled(StoreKind::Postgres).await;
}

#[actix_web::test]
async fn placed_precedes_cancelled_memory() {
    placed_precedes_cancelled(StoreKind::Memory).await;
}
