//! Paths spelt another way to skip the rate limiter and authentication: both decide on
//! the path the router matches, so `/%61pi/v1/auth/token` is the login route, limited
//! and authenticated like it; spellings no route matches are 404.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{problem, spawn_app_with, StoreKind};

#[actix_web::test]
async fn percent_encoded_paths_are_limited_and_authenticated() {
    let app = spawn_app_with(StoreKind::Memory, |c| {
        c.rate_limits.ip.quota = 4;
        c.rate_limits.ip.window_secs = 3600;
        c.rate_limits.user.quota = 1000;
    })
    .await;
    let user = app.new_user().await; // one anonymous request each: register, login
                                     // Authenticated through the other spelling: the token counts (it was ignored).
    let res = app
        .authed(Method::GET, "/%61pi/v1/users/me", &user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .authed(Method::GET, "/%61pi/v1/users/me", "not-a-token")
        .send()
        .await
        .unwrap();
    problem(res, 401, "unauthenticated").await;
    // Anonymous logins through the other spelling spend the IP's quota like any other.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let res = app
            .request(Method::POST, "/%61pi/v1/auth/token")
            .json(&json!({"email": user.email, "password": "wrong-password"}))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    assert!(statuses.contains(&429), "never limited: {statuses:?}");
    let res = app
        .request(Method::POST, "/api/v1/%75sers")
        .json(&json!({"email": "x@example.com", "name": "X", "password": "password-1"}))
        .send()
        .await
        .unwrap();
    problem(res, 429, "rate_limited").await;
    // Spellings that name no route are not found, whatever they carry.
    for path in [
        "//api/v1/users/me",
        "/api//v1/users/me",
        "/api/v1/users/me/",
    ] {
        let res = app
            .authed(Method::GET, path, &user.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
}
