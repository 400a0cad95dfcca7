//! Registration and login (the rest of the users and auth routes build on these).

use crate::both_stores;
use crate::helpers::{problem, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};

async fn register_then_login(app: &TestApp) {
    let res = app
        .register("  Ada@Example.com ", "  Ada Lovelace ", "analytical-engine")
        .await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(res.headers()["etag"].to_str().unwrap().starts_with("\"v"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/v1/users/{}", body["id"].as_str().unwrap())
    );
    assert_eq!(body["email"], "ada@example.com");
    assert_eq!(body["name"], "Ada Lovelace");
    assert_eq!(body["role"], "user");
    assert_eq!(body["status"], "active");
    assert!(body.get("password").is_none() && body.get("password_hash").is_none());
    let created =
        chrono::DateTime::parse_from_rfc3339(body["created_at"].as_str().unwrap()).unwrap();
    assert_eq!(created.offset().local_minus_utc(), 0);

    let res = app.login("ADA@example.com", "analytical-engine").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let tokens: Value = res.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    assert!(tokens["access_token"].as_str().unwrap().split('.').count() == 3);
    assert!(tokens["refresh_token"].as_str().unwrap().len() >= 43);
}
both_stores!(register_and_login, register_then_login);

async fn registration_rules(app: &TestApp) {
    let res = app.register("not-an-email", "", "short").await;
    let body = problem(res, 422, "validation_failed").await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "name", "password"]);

    let res = app
        .post_json("/api/v1/users", &json!({"email": "a@b.co", "name": "A"}))
        .await;
    let body = problem(res, 400, "malformed_request").await;
    assert_eq!(body["errors"][0]["field"], "password");

    let res = app
        .post_json(
            "/api/v1/users",
            &json!({"email": "a@b.co", "name": "A", "password": "12345678", "role": "admin"}),
        )
        .await;
    let body = problem(res, 400, "malformed_request").await;
    assert_eq!(body["errors"][0]["field"], "role");

    let res = app
        .post_json(
            "/api/v1/users",
            &json!({"email": 5, "name": "A", "password": "12345678"}),
        )
        .await;
    let body = problem(res, 400, "malformed_request").await;
    assert_eq!(body["errors"][0]["field"], "email");

    let res = app
        .request(Method::POST, "/api/v1/users")
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    problem(res, 400, "malformed_request").await;
    let res = app
        .request(Method::POST, "/api/v1/users")
        .header("content-type", "application/json")
        .body("[1, 2]")
        .send()
        .await
        .unwrap();
    problem(res, 400, "malformed_request").await;
    let res = app
        .request(Method::POST, "/api/v1/users")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    problem(res, 415, "unsupported_media_type").await;
    let huge = json!({"email": "a@b.co", "name": "x".repeat(70 * 1024), "password": "12345678"});
    let res = app.post_json("/api/v1/users", &huge).await;
    problem(res, 413, "payload_too_large").await;

    assert_eq!(
        app.register("dup@example.com", "A", "12345678")
            .await
            .status(),
        201
    );
    let res = app.register("DUP@example.com", "B", "12345678").await;
    problem(res, 409, "duplicate_email").await;

    let res = app
        .request(Method::DELETE, "/api/v1/users")
        .send()
        .await
        .unwrap();
    problem(res, 405, "method_not_allowed").await;
}
both_stores!(registration_validation, registration_rules);

async fn login_failures_look_alike(app: &TestApp) {
    assert_eq!(
        app.register("bob@example.com", "Bob", "right-password")
            .await
            .status(),
        201
    );
    let wrong = app.login("bob@example.com", "wrong-password").await;
    let wrong = problem(wrong, 401, "invalid_credentials").await;
    let unknown = app.login("nobody@example.com", "right-password").await;
    let unknown = problem(unknown, 401, "invalid_credentials").await;
    assert_eq!(wrong["detail"], unknown["detail"]);
    let malformed = app.login("not an email", "right-password").await;
    problem(malformed, 401, "invalid_credentials").await;
}
both_stores!(login_failures, login_failures_look_alike);

async fn bootstrap_admin_can_log_in(app: &TestApp) {
    let res = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(res.status(), 200);
}
both_stores!(bootstrap_admin, bootstrap_admin_can_log_in);

async fn login_is_rate_limited_per_email(app: &TestApp) {
    assert_eq!(
        app.register("carol@example.com", "Carol", "right-password")
            .await
            .status(),
        201
    );
    let quota = app_login_quota();
    for _ in 0..quota {
        let res = app.login("carol@example.com", "wrong-password").await;
        assert_eq!(res.status(), 401);
        assert!(res.headers().contains_key("ratelimit-policy"));
    }
    let res = app.login("carol@example.com", "right-password").await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_eq!(res.headers()["x-ratelimit-remaining"], "0");
    problem(res, 429, "rate_limited").await;
    // Another email is not affected.
    let res = app.login("someone-else@example.com", "whatever-pass").await;
    assert_eq!(res.status(), 401);
}
both_stores!(login_rate_limit, login_is_rate_limited_per_email);

fn app_login_quota() -> u32 {
    bulkhead::config::Config::default().rate_limits.login.quota
}
