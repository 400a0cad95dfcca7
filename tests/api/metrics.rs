//! `/metrics`: the Prometheus exposition is valid (`promtool check metrics`), carries the
//! HTTP, actor, limiter, circuit, bulkhead, pool, cache and process series, and keeps its
//! labels bounded.

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::Method;

use crate::both_stores;
use crate::helpers::TestApp;

async fn scrape(app: &TestApp) -> String {
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    res.text().await.unwrap()
}

async fn exposition_is_valid_and_bounded(app: &TestApp) {
    let user = app.new_user().await;
    let _ = app.get("/api/v1/nope").await;
    let _ = app
        .authed(
            Method::GET,
            &format!("/api/v1/users/{}", user.id),
            &user.token,
        )
        .send()
        .await
        .unwrap();
    let text = scrape(app).await;

    for series in [
        "bulkhead_http_requests_total{",
        "bulkhead_http_request_duration_seconds_bucket{",
        "bulkhead_http_requests_in_flight",
        "bulkhead_ratelimit_decisions_total{",
        "bulkhead_bulkhead_in_flight{",
        "bulkhead_bulkhead_limit{bulkhead=\"db_read\"} ",
        "bulkhead_bulkhead_queue_wait_seconds_bucket{",
        "bulkhead_cache_hits_total{",
        "bulkhead_cache_misses_total{",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ] {
        assert!(text.contains(series), "missing {series} in:\n{text}");
    }
    assert!(text.contains("route=\"/api/v1/users\""), "{text}");
    assert!(text.contains("route=\"unmatched\""), "{text}");
    if app.kind == crate::helpers::StoreKind::Postgres {
        assert!(
            text.contains("bulkhead_db_pool_available{pool=\"read\"}"),
            "{text}"
        );
        assert!(
            text.contains("bulkhead_circuit_state{circuit=\"postgres\",state=\"closed\"} 1"),
            "{text}"
        );
    }
    // Bounded labels: no raw paths with ids, no user ids anywhere.
    assert!(
        !text.contains(&user.id.to_string()),
        "a user id leaked into a label"
    );
    assert!(
        !text.contains("/api/v1/nope"),
        "a raw path leaked into a label"
    );

    // The real linter accepts it.
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (.ci/run installs Debian's prometheus package)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
both_stores!(metrics_exposition, exposition_is_valid_and_bounded);
