use crate::both_stores;
use crate::helpers::{spawn_app_with, StoreKind, TestApp};
use bulkhead::config::DatabaseUrl;
use serde_json::Value;

async fn health_is_ok(app: &TestApp) {
    let res = app.get("/health").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-request-id"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ok"}));
}
both_stores!(health_answers_ok, health_is_ok);

async fn ready_when_store_answers(app: &TestApp) {
    let res = app.get("/ready").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["checks"]["store"], "ok");
    let backend = match app.kind {
        StoreKind::Postgres => "postgres",
        StoreKind::Memory => "memory",
    };
    assert_eq!(body["backend"], backend);
}
both_stores!(ready_answers_ok, ready_when_store_answers);

#[actix_web::test]
async fn ready_is_503_while_the_store_does_not_answer() {
    // Nothing listens on port 1: every connection attempt fails at once.
    let app = spawn_app_with(StoreKind::Memory, |c| {
        c.database.url = Some(DatabaseUrl::new("postgres://postgres@127.0.0.1:1/none"));
        c.database.migrate_on_start = false;
        // Ensuring the bootstrap admin needs the store; without one, start must not.
        c.auth.bootstrap_admin_email = None;
        c.auth.bootstrap_admin_password = None;
    })
    .await;
    let res = app.get("/ready").await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["store"], "unavailable");
    // The process itself is alive.
    assert_eq!(app.get("/health").await.status(), 200);
}

/// With a lame-duck delay the listener stays open after the signal while `/ready` says
/// 503, so a load balancer stops routing here before connections are refused.
#[actix_web::test]
async fn ready_turns_503_when_shutdown_begins() {
    let app = spawn_app_with(StoreKind::Memory, |c| c.server.shutdown_delay_ms = 2_000).await;
    assert_eq!(app.get("/ready").await.status(), 200);
    let stopping = tokio::select! {
        _ = app.stop() => None,
        res = async {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            app.get("/ready").await
        } => Some(res),
    };
    let res = stopping.expect("the listener is still open during the lame-duck delay");
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["shutdown"], "in_progress");
    // Liveness is unaffected.
    assert_eq!(app.get("/health").await.status(), 200);
}
