//! Framework errors become problem+json with the contract's codes.

use crate::both_stores;
use crate::helpers::{problem, TestApp};
use reqwest::Method;

async fn unknown_route_is_404_problem(app: &TestApp) {
    let res = app.get("/api/v1/nope").await;
    let body = problem(res, 404, "not_found").await;
    assert_eq!(body["instance"], "/api/v1/nope");
}
both_stores!(unknown_route, unknown_route_is_404_problem);

async fn wrong_method_is_405_with_allow(app: &TestApp) {
    let res = app.request(Method::DELETE, "/health").send().await.unwrap();
    let allow = res
        .headers()
        .get("allow")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(allow, "GET, HEAD");
    problem(res, 405, "method_not_allowed").await;
}
both_stores!(wrong_method, wrong_method_is_405_with_allow);

async fn request_id_is_echoed_or_generated(app: &TestApp) {
    let res = app
        .request(Method::GET, "/health")
        .header("x-request-id", "abc.DEF_123-x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc.DEF_123-x");

    for bad in ["has space", "semi;colon", &"x".repeat(129)] {
        let res = app
            .request(Method::GET, "/health")
            .header("x-request-id", bad)
            .send()
            .await
            .unwrap();
        let got = res.headers()["x-request-id"].to_str().unwrap();
        assert_ne!(got, bad);
        assert!(!got.is_empty() && got.len() <= 128);
    }
    let a = app.get("/health").await.headers()["x-request-id"].clone();
    let b = app.get("/health").await.headers()["x-request-id"].clone();
    assert_ne!(a, b, "generated ids are unique");

    // An error answer names the same id in its body.
    let res = app
        .request(Method::GET, "/nope")
        .header("x-request-id", "trace-me-1")
        .send()
        .await
        .unwrap();
    let body = problem(res, 404, "not_found").await;
    assert_eq!(body["request_id"], "trace-me-1");
}
both_stores!(request_id, request_id_is_echoed_or_generated);
