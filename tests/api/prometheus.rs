//! A real Prometheus server scrapes a running Bulkhead: it starts as a child process
//! (killed when the test ends), scrapes `/metrics` every second, and its query API answers
//! `sum(bulkhead_http_requests_total)` with a sample before a deadline.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::tools::{KillOnDrop, TempDir};
use crate::helpers::{spawn_app, StoreKind};

const DEADLINE: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[actix_web::test]
async fn prometheus_scrapes_bulkhead_and_answers_queries() {
    let app = spawn_app(StoreKind::Memory).await;
    let target = app.address.trim_start_matches("http://").to_string();
    let dir = TempDir::new("bulkhead-prometheus");
    let config = dir.path("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: bulkhead\n    metrics_path: /metrics\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus is installed (.ci/run installs Debian's prometheus package)");
    // Killed on every exit of this test, assertion failures included.
    let _prometheus = KillOnDrop(child);

    for _ in 0..5 {
        assert_eq!(app.get("/health").await.status(), 200);
        let _ = app.get("/api/v1/products").await;
    }

    let query =
        format!("http://127.0.0.1:{port}/api/v1/query?query=sum(bulkhead_http_requests_total)");
    let started = Instant::now();
    let mut last = String::from("no answer yet");
    loop {
        if let Ok(res) = app.client.get(&query).send().await {
            let body: Value = res.json().await.unwrap_or(Value::Null);
            let result = &body["data"]["result"];
            if body["status"] == "success" && result.as_array().is_some_and(|r| !r.is_empty()) {
                let value: f64 = result[0]["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .expect("a numeric sample");
                assert!(value >= 5.0, "scraped request count {value}");
                break;
            }
            last = body.to_string();
        }
        assert!(
            started.elapsed() < DEADLINE,
            "Prometheus gave no sample of bulkhead_http_requests_total within {DEADLINE:?}: {last}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
        // Keep traffic flowing, so every scrape sees fresh counts.
        let _ = app.get("/health").await;
    }

    // The target is healthy in Prometheus's own view, too.
    let targets: Value = app
        .client
        .get(format!("http://127.0.0.1:{port}/api/v1/targets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        targets["data"]["activeTargets"][0]["health"], "up",
        "{targets}"
    );
}
