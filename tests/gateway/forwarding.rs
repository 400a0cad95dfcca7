//! What goes through: method, path, query, body and headers, both ways, streamed; what
//! does not: hop-by-hop headers, unsafe paths, methods a route does not serve.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::problem;
use crate::upstream::{echoed, Mode, Upstream};
use crate::{route, spawn_gateway};

#[actix_web::test]
async fn forwards_method_path_query_body_and_headers() {
    let echo = Upstream::start(Mode::Echo).await;
    let mut stripped = route("stripped", "/api/v1/stripped", &[&echo]);
    stripped.strip_prefix = true;
    stripped.upstreams = vec![format!("{}/base/", echo.url)];
    let app = spawn_gateway(
        vec![route("echo", "/api/v1/echo", &[&echo]), stripped],
        |_| {},
    )
    .await;

    let res = app
        .request(Method::POST, "/api/v1/echo/items?x=1&y=a%20b")
        .header("content-type", "text/plain")
        .header("x-custom", "one")
        .header("x-want-status", "201")
        .body("hello upstream")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "the upstream's status");
    assert_eq!(res.headers()["x-upstream"], "yes", "the upstream's headers");
    assert!(
        res.headers().contains_key("ratelimit-policy"),
        "the route is rate limited"
    );
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["method"], "POST");
    assert_eq!(doc["path"], "/api/v1/echo/items");
    assert_eq!(doc["query"], "x=1&y=a%20b");
    assert_eq!(doc["body"], "hello upstream");
    assert_eq!(echoed(&doc, "x-custom"), ["one"]);
    assert_eq!(echoed(&doc, "x-request-id"), [request_id]);
    assert_eq!(echoed(&doc, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(echoed(&doc, "x-forwarded-proto"), ["http"]);
    let left: u64 = echoed(&doc, "x-request-deadline-ms")[0].parse().unwrap();
    assert!(left > 0 && left <= 5_000, "{left}");

    for (path, upstream_path) in [
        ("/api/v1/stripped/a/b", "/base/a/b"),
        ("/api/v1/stripped", "/base/"),
    ] {
        let doc: Value = app.get(path).await.json().await.unwrap();
        assert_eq!(doc["path"], upstream_path, "{path}");
        assert_eq!(doc["method"], "GET");
    }

    // An upstream's own error passes through as it is, not as a problem.
    let res = app
        .request(Method::GET, "/api/v1/echo/missing")
        .header("x-want-status", "404")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/json");
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["path"], "/api/v1/echo/missing");

    // Neighbouring paths are not the route's; unknown paths stay 404 problems.
    for path in ["/api/v1/echoes", "/api/v1/nothing"] {
        problem(app.get(path).await, 404, "not_found").await;
    }
    // Encoded slashes and dot segments never reach an upstream.
    let hits = echo.hits();
    problem(
        app.get("/api/v1/echo/a%2F..%2Fb").await,
        400,
        "malformed_request",
    )
    .await;
    assert_eq!(echo.hits(), hits);
}

#[actix_web::test]
async fn large_bodies_stream_both_ways() {
    let echo = Upstream::start(Mode::Echo).await;
    let large = Upstream::start(Mode::Large(3 * 1024 * 1024 + 7)).await;
    let app = spawn_gateway(
        vec![
            route("echo", "/api/v1/echo", &[&echo]),
            route("large", "/api/v1/large", &[&large]),
        ],
        |_| {},
    )
    .await;
    // Over the retry buffer (64 KiB) and over server.max_body_bytes: streamed upstream.
    let body = vec![b'y'; 2 * 1024 * 1024];
    let res = app
        .request(Method::PUT, "/api/v1/echo/upload")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["body_len"], 2 * 1024 * 1024);

    let res = app.get("/api/v1/large/file").await;
    assert_eq!(res.status(), 200);
    let bytes = res.bytes().await.unwrap();
    assert_eq!(bytes.len(), 3 * 1024 * 1024 + 7);
    assert!(bytes.iter().all(|b| *b == b'x'));
}

#[actix_web::test]
async fn methods_and_auth_are_the_routes() {
    let echo = Upstream::start(Mode::Echo).await;
    let mut read_only = route("readonly", "/api/v1/readonly", &[&echo]);
    read_only.methods = vec!["GET".into(), "HEAD".into()];
    read_only.auth = bulkhead::config::RouteAuth::Required;
    let app = spawn_gateway(vec![read_only], |_| {}).await;

    problem(app.get("/api/v1/readonly/x").await, 401, "unauthenticated").await;
    let user = app.new_user().await;
    let res = app
        .authed(Method::DELETE, "/api/v1/readonly/x", &user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["allow"], "GET, HEAD");
    problem(res, 405, "method_not_allowed").await;
    assert_eq!(echo.hits(), 0, "refused requests never reach the upstream");

    let res = app
        .authed(Method::GET, "/api/v1/readonly/x", &user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(echo.hits(), 1);
}

#[actix_web::test]
async fn every_api_route_is_under_a_reserved_prefix() {
    // Gateway prefixes are refused where they overlap these; a new API resource outside
    // them could be shadowed by a route.
    let app = spawn_gateway(Vec::new(), |_| {}).await;
    let _ = app.get("/health").await;
    for (path, _) in bulkhead::http::served_routes() {
        if path.starts_with("/api/") {
            assert!(
                bulkhead::config::API_PREFIXES
                    .iter()
                    .any(|p| path == *p || path.starts_with(&format!("{p}/"))),
                "{path} is not under config::API_PREFIXES"
            );
        }
    }
}
