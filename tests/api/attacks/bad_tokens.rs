//! Guessing tokens: a request refused for its token spends the client IP's quota like
//! any anonymous request, so forged or stolen-and-revoked tokens cannot be tried at
//! any rate.

use reqwest::Method;

use crate::helpers::{problem, spawn_app_with, StoreKind};

#[actix_web::test]
async fn requests_with_bad_tokens_are_rate_limited_per_ip() {
    let app = spawn_app_with(StoreKind::Memory, |c| {
        c.rate_limits.ip.quota = 5;
        c.rate_limits.ip.window_secs = 3600;
    })
    .await;
    let user = app.new_user().await; // two anonymous requests: register, login
    let mut answers = Vec::new();
    for i in 0..4 {
        let res = app
            .authed(
                Method::GET,
                "/api/v1/users/me",
                &format!("forged.token.{i}"),
            )
            .send()
            .await
            .unwrap();
        assert!(
            res.headers().contains_key("ratelimit"),
            "{:?}",
            res.headers()
        );
        answers.push(res);
    }
    let last = answers.pop().unwrap();
    for res in answers {
        problem(res, 401, "unauthenticated").await;
    }
    problem(last, 429, "rate_limited").await;
    // The valid token is the user's own quota: unaffected.
    let res = app
        .authed(Method::GET, "/api/v1/users/me", &user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
