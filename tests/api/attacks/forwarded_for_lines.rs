//! `X-Forwarded-For` in several header lines behind a trusted proxy: the proxy appends
//! its own line, so reading only the first let the client pick its own rate-limit key
//! (or spend a victim's). All lines are one list, in order.

use reqwest::Method;

use crate::helpers::{problem, spawn_app_with, StoreKind, TestApp};

async fn products_via(app: &TestApp, lines: &[&str]) -> reqwest::Response {
    let mut req = app.request(Method::GET, "/api/v1/products");
    for line in lines {
        req = req.header("x-forwarded-for", *line);
    }
    req.send().await.unwrap()
}

#[actix_web::test]
async fn forwarded_for_split_over_lines_cannot_choose_the_rate_limit_key() {
    let app = spawn_app_with(StoreKind::Memory, |c| {
        // The test client is the trusted proxy.
        c.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.rate_limits.ip.quota = 3;
        c.rate_limits.ip.window_secs = 3600;
    })
    .await;
    // The client wrote the first line; the proxy appended the second with the peer it saw.
    let client = ["198.51.100.7", "203.0.113.5"];
    for _ in 0..3 {
        assert_eq!(products_via(&app, &client).await.status(), 200);
    }
    let res = products_via(&app, &client).await;
    problem(res, 429, "rate_limited").await;
    // The same list in one line is the same client: limited too.
    let res = products_via(&app, &["198.51.100.7, 203.0.113.5"]).await;
    problem(res, 429, "rate_limited").await;
    // Another client naming the limited one in its own line is still itself.
    let res = products_via(&app, &["203.0.113.5", "198.51.100.9"]).await;
    assert_eq!(res.status(), 200);
    // A garbled line ends what can be vouched for: the proxy's own address keys it.
    let res = products_via(&app, &["203.0.113.5", "not-an-ip"]).await;
    assert_eq!(res.status(), 200);
}
