//! Faults and overload over HTTP: the Postgres circuit, bulkheads and rate limits.

use std::time::{Duration, Instant};

use bulkhead::config::DatabaseUrl;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::proxy::{host_port, Proxy};
use crate::helpers::{problem, spawn_app_with, StoreKind, TestApp, TestDatabase};

/// Poll `f` until it is true or `deadline` passes.
async fn eventually(deadline: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn ready(app: &TestApp) -> (u16, Value) {
    let res = app.get("/ready").await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

/// Postgres unreachable: store calls answer 503 `dependency_unavailable` with Retry-After,
/// the circuit opens, `/ready` is 503; Postgres back: the circuit closes again and the
/// service serves, with no restart.
#[actix_web::test]
async fn postgres_outage_opens_the_circuit_and_recovery_closes_it() {
    let db = TestDatabase::create().await;
    let proxy = Proxy::start(host_port(&db.url)).await;
    let database = db.url.rsplit_once('/').unwrap().1;
    let via_proxy = format!("postgres://postgres@127.0.0.1:{}/{database}", proxy.port);
    let app = spawn_app_with(StoreKind::Memory, |c| {
        c.database.url = Some(DatabaseUrl::new(via_proxy.clone()));
        c.database.pool_wait_timeout_ms = 300;
        c.database.pool_create_timeout_ms = 300;
        c.circuits.postgres.minimum_calls = 3;
        c.circuits.postgres.window_size = 10;
        c.circuits.postgres.failure_rate_threshold = 0.5;
        c.circuits.postgres.open_wait_ms = 300;
        c.circuits.postgres.half_open_trial_calls = 1;
        c.rate_limits.enabled = false;
    })
    .await;
    let _keep_db = db;
    assert_eq!(
        app.register("ok@example.com", "Ok", "password-1")
            .await
            .status(),
        201
    );
    assert_eq!(ready(&app).await.0, 200);

    proxy.cut();
    // Store calls fail as the dependency's fault until the circuit opens.
    let mut saw_open = false;
    for _ in 0..20 {
        let res = app.login("ok@example.com", "password-1").await;
        assert!(res.headers().contains_key("retry-after"));
        problem(res, 503, "dependency_unavailable").await;
        let (_, r) = ready(&app).await;
        if r["checks"]["circuit_postgres"] == "open" {
            saw_open = true;
            break;
        }
    }
    assert!(saw_open, "the circuit never opened");
    let (status, body) = ready(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    // Liveness is untouched by a dependency outage.
    assert_eq!(app.get("/health").await.status(), 200);

    proxy.restore();
    // /ready probes through the circuit: it closes without user traffic.
    let recovered = eventually(Duration::from_secs(15), async || ready(&app).await.0 == 200).await;
    assert!(
        recovered,
        "the circuit did not close after Postgres came back"
    );
    let (_, body) = ready(&app).await;
    assert_eq!(body["checks"]["circuit_postgres"], "closed");
    assert_eq!(
        app.login("ok@example.com", "password-1").await.status(),
        200
    );
}

/// A full bulkhead answers 503 `overloaded` at once with Retry-After; what it admitted
/// completes.
#[actix_web::test]
async fn full_hashing_bulkhead_answers_503_at_once() {
    let app = spawn_app_with(StoreKind::Memory, |c| {
        c.bulkheads.hashing.max_concurrent = 1;
        c.bulkheads.hashing.queue_capacity = 1;
        c.bulkheads.hashing.queue_timeout_ms = 10_000;
        // Each hash takes tens of milliseconds: long enough for the 8 requests, sent
        // at once, to pile up; short enough that the queued one finishes well within
        // its deadline on a loaded machine.
        c.auth.argon2_memory_kib = 16 * 1024;
        c.auth.argon2_iterations = 2;
        c.rate_limits.enabled = false;
    })
    .await;
    let app = std::sync::Arc::new(app);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let app = app.clone();
            actix_web::rt::spawn(async move {
                let started = Instant::now();
                let res = app
                    .register(&format!("load{i}@example.com"), "Load", "password-1")
                    .await;
                (res, started.elapsed())
            })
        })
        .collect();
    let (mut created, mut overloaded, mut seen) = (0, 0, Vec::new());
    for t in tasks {
        let (res, elapsed) = t.await.unwrap();
        seen.push((res.status().as_u16(), elapsed));
        match res.status().as_u16() {
            201 => created += 1,
            503 => {
                let retry: u64 = res.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(retry >= 1);
                problem(res, 503, "overloaded").await;
                overloaded += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        created >= 2,
        "the running and the queued request complete: {seen:?}"
    );
    assert!(overloaded >= 1, "the excess is refused: {seen:?}");
    assert_eq!(created + overloaded, 8);
    // Counted by exact code, not only as "5xx" (the recorder is the process's: other
    // tests may add to the series, never take from it).
    let text = app.get("/metrics").await.text().await.unwrap();
    let counted: f64 = text
        .lines()
        .filter(|l| {
            l.starts_with("bulkhead_http_server_errors_total{")
                && l.contains("route=\"/api/v1/users\"")
                && l.contains("code=\"503\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        counted >= f64::from(overloaded),
        "{overloaded} answered 503, {counted} counted:\n{text}"
    );
}

/// Anonymous requests are limited per client IP; `/health`, `/ready`, `/metrics` never.
#[actix_web::test]
async fn anonymous_requests_are_limited_per_ip() {
    let app = spawn_app_with(StoreKind::Memory, |c| {
        c.rate_limits.ip.quota = 3;
        c.rate_limits.ip.window_secs = 60;
        c.server.cors_allowed_origins = vec!["https://app.example.com".into()];
    })
    .await;
    for i in 0..3 {
        let res = app.post_json("/api/v1/users", &json!({})).await;
        assert_eq!(res.status(), 400);
        let h = res.headers();
        assert_eq!(h["ratelimit-policy"], "\"ip\";q=3;w=60");
        assert_eq!(h["x-ratelimit-limit"], "3");
        assert_eq!(h["x-ratelimit-remaining"], (2 - i).to_string().as_str());
        assert_eq!(
            h["ratelimit"].to_str().unwrap(),
            format!(
                "\"ip\";r={};t={}",
                2 - i,
                h["x-ratelimit-reset"].to_str().unwrap()
            )
        );
        let reset: u64 = h["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
        assert!(reset <= 60);
    }
    let res = app.post_json("/api/v1/users", &json!({})).await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    problem(res, 429, "rate_limited").await;
    for path in ["/health", "/ready", "/metrics"] {
        for _ in 0..5 {
            let res = app.get(path).await;
            assert_eq!(res.status(), 200, "{path}");
            assert!(!res.headers().contains_key("ratelimit-policy"));
        }
    }
    // A CORS preflight is answered although the IP's quota is spent.
    let res = app
        .request(Method::OPTIONS, "/api/v1/users")
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, idempotency-key",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(!res.headers().contains_key("ratelimit-policy"));
}

/// Authenticated requests are limited per user, each user with a quota of their own.
#[actix_web::test]
async fn authenticated_requests_are_limited_per_user() {
    let app = spawn_app_with(StoreKind::Memory, |c| {
        c.rate_limits.user.quota = 2;
        c.rate_limits.ip.quota = 1_000;
    })
    .await;
    let a = app.new_user().await;
    let b = app.new_user().await;
    for _ in 0..2 {
        let res = app
            .authed(Method::POST, "/api/v1/users", &a.token)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["ratelimit-policy"], "\"user\";q=2;w=60");
    }
    let res = app
        .authed(Method::POST, "/api/v1/users", &a.token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    problem(res, 429, "rate_limited").await;
    // User b is unaffected by a's exhaustion.
    let res = app
        .authed(Method::POST, "/api/v1/users", &b.token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

/// Behind a trusted proxy the client is the rightmost untrusted X-Forwarded-For entry.
#[actix_web::test]
async fn trusted_proxy_clients_are_limited_separately() {
    let app = spawn_app_with(StoreKind::Memory, |c| {
        c.rate_limits.ip.quota = 1;
        c.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let send = |xff: &'static str| {
        app.request(Method::POST, "/api/v1/users")
            .header("x-forwarded-for", xff)
            .json(&json!({}))
            .send()
    };
    assert_eq!(send("198.51.100.1").await.unwrap().status(), 400);
    assert_eq!(send("198.51.100.1").await.unwrap().status(), 429);
    // A spoofed leftmost entry does not help: the rightmost untrusted one counts.
    assert_eq!(
        send("203.0.113.7, 198.51.100.1").await.unwrap().status(),
        429
    );
    assert_eq!(send("198.51.100.2").await.unwrap().status(), 400);
}

/// At most `concurrency_per_key` requests of one user in flight; the slot is released
/// when the request ends.
#[actix_web::test]
async fn concurrent_requests_per_user_are_limited() {
    let app = spawn_app_with(StoreKind::Memory, |c| {
        c.rate_limits.limiter.concurrency_per_key = 1;
        c.bulkheads.hashing.max_concurrent = 2;
        // A slow request: registration hashes a password at a high cost.
        c.auth.argon2_memory_kib = 64 * 1024;
        c.auth.argon2_iterations = 4;
    })
    .await;
    let user = app.new_user().await;
    let slow = |n: u32| {
        app.authed(Method::POST, "/api/v1/users", &user.token)
            .json(&json!({"email": format!("slow{n}@example.com"), "name": "S", "password": "password-1"}))
            .send()
    };
    let (a, b) = tokio::join!(slow(1), slow(2));
    let mut statuses = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
    statuses.sort();
    assert_eq!(
        statuses,
        [201, 429],
        "one runs, the concurrent one is refused"
    );
    // The slot came back when the first request ended.
    assert_eq!(slow(3).await.unwrap().status(), 201);
    // Another user is not affected by this user's limit.
    let other = app.new_user().await;
    let res = app
        .authed(Method::POST, "/api/v1/users", &other.token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}
