//! `GET /api/v1/me/overview`: the caller, their recent orders, and the configured parts
//! fetched in parallel through their routes; a slow and a failing part are listed in
//! `errors` and the answer is still 200, within the slow part's deadline.

use std::time::{Duration, Instant};

use bulkhead::config::OverviewPartConfig;
use reqwest::Method;
use serde_json::Value;

use crate::helpers::problem;
use crate::upstream::{echoed, Mode, Upstream};
use crate::{route, spawn_gateway};

fn part(name: &str, route: &str, path: &str, timeout_ms: u64) -> OverviewPartConfig {
    OverviewPartConfig {
        name: name.into(),
        route: route.into(),
        path: path.into(),
        timeout_ms,
    }
}

#[actix_web::test]
async fn overview_answers_with_a_slow_and_a_failing_part() {
    let profile = Upstream::start(Mode::Echo).await;
    let slow = Upstream::start(Mode::Slow(Duration::from_secs(3))).await;
    let broken = Upstream::start(Mode::Status(500)).await;
    let routes = vec![
        route("profile", "/api/v1/profile", &[&profile]),
        route("slowsvc", "/api/v1/slowsvc", &[&slow]),
        route("broken", "/api/v1/broken", &[&broken]),
    ];
    let app = spawn_gateway(routes, |c| {
        c.gateway.overview_parts = vec![
            part(
                "profile",
                "profile",
                "/users/{user_id}/profile?full=1",
                1_000,
            ),
            part("recommendations", "slowsvc", "/recs/{user_id}", 200),
            part("reviews", "broken", "/reviews?user={user_id}", 1_000),
        ];
    })
    .await;
    problem(app.get("/api/v1/me/overview").await, 401, "unauthenticated").await;

    let user = app.new_user().await;
    let started = Instant::now();
    let res = app
        .authed(Method::GET, "/api/v1/me/overview", &user.token)
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    // In parallel, and the slow part cut at its own 200 ms (retries included).
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");

    assert_eq!(doc["user"]["id"], user.id.to_string());
    assert_eq!(doc["user"]["email"], user.email);
    assert_eq!(doc["orders"], serde_json::json!([]));
    let echoed_part = &doc["parts"]["profile"];
    assert_eq!(echoed_part["path"], format!("/users/{}/profile", user.id));
    assert_eq!(echoed_part["query"], "full=1");
    assert_eq!(echoed(echoed_part, "x-user-id"), [user.id.to_string()]);
    assert_eq!(echoed(echoed_part, "x-bulkhead-identity").len(), 1);
    let parts = doc["parts"].as_object().unwrap();
    assert_eq!(parts.len(), 1, "{doc}");

    let mut errors: Vec<(String, String)> = doc["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(e["detail"].is_string());
            (
                e["part"].as_str().unwrap().into(),
                e["code"].as_str().unwrap().into(),
            )
        })
        .collect();
    errors.sort();
    assert_eq!(
        errors,
        [
            (
                "recommendations".to_string(),
                "upstream_timeout".to_string()
            ),
            ("reviews".to_string(), "bad_gateway".to_string()),
        ]
    );
}

#[actix_web::test]
async fn overview_without_gateway_has_no_parts() {
    let app = spawn_gateway(Vec::new(), |_| {}).await;
    let user = app.new_user().await;
    let res = app
        .authed(Method::GET, "/api/v1/me/overview", &user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["parts"], serde_json::json!({}));
    assert_eq!(doc["errors"], serde_json::json!([]));
    assert_eq!(doc["user"]["id"], user.id.to_string());
}
