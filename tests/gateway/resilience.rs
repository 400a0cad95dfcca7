//! Per-route resilience against failing upstreams: deadlines, retries within the budget,
//! the circuit, outlier ejection, resets.

use std::time::{Duration, Instant};

use bulkhead::config::Config;
use futures_util::future::join_all;
use reqwest::Method;

use crate::helpers::problem;
use crate::upstream::{Mode, Upstream};
use crate::{metric, route, spawn_gateway};

/// A circuit that never opens in these tests' volumes, so retries and ejection are seen
/// on their own.
fn permissive_circuit(c: &mut Config) {
    c.gateway.upstream.circuit.window_size = 100_000;
    c.gateway.upstream.circuit.minimum_calls = 100_000;
}

#[actix_web::test]
async fn a_slow_upstream_is_a_504_within_the_deadline() {
    let slow = Upstream::start(Mode::Slow(Duration::from_secs(5))).await;
    let mut r = route("slow", "/api/v1/slow", &[&slow]);
    r.timeout_ms = 300;
    let app = spawn_gateway(vec![r], permissive_circuit).await;
    let started = Instant::now();
    let res = app.get("/api/v1/slow/x").await;
    let elapsed = started.elapsed();
    problem(res, 504, "upstream_timeout").await;
    // The deadline covers every attempt: a timed-out attempt is not retried past it.
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(slow.hits(), 1);
}

#[actix_web::test]
async fn retries_stay_within_the_budget_under_a_failing_upstream() {
    let failing = Upstream::start(Mode::Status(503)).await;
    let mut r = route("flaky", "/api/v1/flaky", &[&failing]);
    r.retries = 3;
    let app = spawn_gateway(vec![r], |c| {
        permissive_circuit(c);
        c.gateway.upstream.retry_budget_percent = 20.0;
        c.gateway.upstream.retry_budget_min_per_sec = 3;
        c.gateway.upstream.retry_backoff_base_ms = 1;
        c.gateway.upstream.retry_backoff_max_ms = 5;
    })
    .await;

    const REQUESTS: usize = 200;
    let started = Instant::now();
    for batch in 0..REQUESTS / 20 {
        let calls = (0..20).map(|i| {
            app.request(Method::GET, &format!("/api/v1/flaky/{batch}/{i}"))
                .send()
        });
        for res in join_all(calls).await {
            let res = res.unwrap();
            assert_eq!(
                res.status(),
                503,
                "the upstream's last answer passes through"
            );
            assert_eq!(res.headers()["x-upstream"], "yes");
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let attempts = failing.hits();
    let retries = attempts - REQUESTS;
    // Without a budget: 200 x (1 + 3) = 800 attempts. With it, the retries of any second
    // are at most max(3, 20 % of that second's requests); over the run, at most 20 % of
    // the requests of two adjacent seconds plus the floor per second.
    let bound = (0.4 * REQUESTS as f64) + 3.0 * (secs.ceil() + 1.0);
    eprintln!(
        "retry amplification under a failing upstream: {attempts} attempts / {REQUESTS} \
         requests = {:.2} in {secs:.2} s",
        attempts as f64 / REQUESTS as f64
    );
    assert!(retries > 0, "the budget allows some retries");
    assert!((retries as f64) <= bound, "{retries} retries > {bound}");
    let refused = metric(
        &app,
        "bulkhead_gateway_retries_refused_total{route=\"flaky\"}",
    )
    .await;
    assert!(refused > 0.0, "the budget refused retries");
    let counted = metric(&app, "bulkhead_gateway_retries_total{route=\"flaky\"}").await;
    assert_eq!(counted as usize, retries);
}

#[actix_web::test]
async fn the_circuit_opens_on_failures_and_closes_after_a_trial() {
    let upstream = Upstream::start(Mode::Status(500)).await;
    let mut r = route("breaker", "/api/v1/breaker", &[&upstream]);
    r.retries = 0;
    let app = spawn_gateway(vec![r], |c| {
        let cb = &mut c.gateway.upstream.circuit;
        cb.window_size = 10;
        cb.minimum_calls = 4;
        cb.failure_rate_threshold = 0.5;
        cb.open_wait_ms = 300;
        cb.half_open_trial_calls = 1;
    })
    .await;
    for _ in 0..4 {
        let res = app.get("/api/v1/breaker/x").await;
        assert_eq!(res.status(), 500, "the upstream's own answer");
    }
    let res = app.get("/api/v1/breaker/x").await;
    assert!(res.headers().contains_key("retry-after"));
    problem(res, 503, "dependency_unavailable").await;
    assert_eq!(upstream.hits(), 4, "an open circuit sends nothing upstream");
    let open = "bulkhead_circuit_state{circuit=\"breaker\",state=\"open\"}";
    assert_eq!(metric(&app, open).await, 1.0);

    upstream.set(Mode::Echo);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let res = app.get("/api/v1/breaker/x").await;
    assert_eq!(res.status(), 200, "the half-open trial");
    let res = app.get("/api/v1/breaker/x").await;
    assert_eq!(res.status(), 200, "closed again");
    let closed = "bulkhead_circuit_state{circuit=\"breaker\",state=\"closed\"}";
    assert_eq!(metric(&app, closed).await, 1.0);
}

#[actix_web::test]
async fn one_bad_replica_of_three_is_ejected() {
    let good_a = Upstream::start(Mode::Echo).await;
    let good_b = Upstream::start(Mode::Echo).await;
    let bad = Upstream::start(Mode::Reset).await;
    let r = route("replicas", "/api/v1/replicas", &[&good_a, &bad, &good_b]);
    let app = spawn_gateway(vec![r], |c| {
        permissive_circuit(c);
        // Budget out of the way: every failure here is retried on a good replica.
        c.gateway.upstream.retry_budget_min_per_sec = 1000;
        c.gateway.upstream.retry_backoff_base_ms = 1;
        c.gateway.upstream.retry_backoff_max_ms = 2;
    })
    .await;
    for i in 0..60 {
        let res = app.get(&format!("/api/v1/replicas/{i}")).await;
        assert_eq!(
            res.status(),
            200,
            "request {i} is retried on a good replica"
        );
    }
    // Five failures in a row eject it (for 30 s): nothing more reaches it.
    assert_eq!(bad.hits(), 5);
    assert_eq!(good_a.hits() + good_b.hits(), 60);
    let ejections = metric(&app, "bulkhead_gateway_ejections_total{route=\"replicas\"}").await;
    assert_eq!(ejections, 1.0);
}

#[actix_web::test]
async fn a_reset_is_a_502_and_unsafe_requests_are_not_retried() {
    let reset = Upstream::start(Mode::Reset).await;
    let app = spawn_gateway(vec![route("reset", "/api/v1/reset", &[&reset])], |c| {
        permissive_circuit(c);
        // The floor (3 a second) would refuse the last of these five retries.
        c.gateway.upstream.retry_budget_min_per_sec = 100;
        c.gateway.upstream.retry_backoff_base_ms = 1;
    })
    .await;
    let res = app
        .request(Method::POST, "/api/v1/reset/x")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    problem(res, 502, "bad_gateway").await;
    assert_eq!(reset.hits(), 1, "a POST is not retried");

    let res = app
        .request(Method::POST, "/api/v1/reset/x")
        .header("idempotency-key", "k-1")
        .body("{}")
        .send()
        .await
        .unwrap();
    problem(res, 502, "bad_gateway").await;
    assert_eq!(reset.hits(), 4, "with an Idempotency-Key it is, twice");

    problem(app.get("/api/v1/reset/x").await, 502, "bad_gateway").await;
    assert_eq!(reset.hits(), 7, "a GET is retried twice");
}
