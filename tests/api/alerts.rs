//! `ops/prometheus/alerts.yml` passes `promtool check rules`, and every metric it uses
//! is one a running Bulkhead exposes (or its `_bucket` series).

use std::process::Command;
use std::time::Duration;

use crate::helpers::tools::{output_text, run_bounded};
use crate::helpers::{spawn_app, StoreKind};

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/ops/prometheus/alerts.yml");

#[test]
fn alert_rules_pass_promtool() {
    let mut cmd = Command::new("promtool");
    cmd.args(["check", "rules", RULES]);
    let out = run_bounded(
        cmd,
        Duration::from_secs(30),
        "apt-get install prometheus (.ci/run does)",
    );
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("SUCCESS: 8 rules found"),
        "{}",
        output_text(&out)
    );
}

#[actix_web::test]
async fn alert_rules_use_only_exposed_metrics() {
    let app = spawn_app(StoreKind::Postgres).await;
    let _ = app.get("/api/v1/products").await;
    let scrape = app.get("/metrics").await.text().await.unwrap();
    let rules = std::fs::read_to_string(RULES).unwrap();
    let used: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("bulkhead_") && w.len() > "bulkhead_".len())
        .collect();
    assert!(used.len() >= 6, "{used:?}");
    for name in used {
        let family = name.strip_suffix("_bucket").unwrap_or(name);
        assert!(
            scrape.contains(&format!("# TYPE {family} ")),
            "alerts.yml uses {name}, which /metrics does not expose"
        );
    }
}

/// The compose stack's Prometheus configuration is valid and loads the same alert rules.
#[test]
fn compose_prometheus_config_passes_promtool() {
    let dir = crate::helpers::tools::TempDir::new("bulkhead-promcfg");
    let config = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/ops/prometheus/prometheus.yml"
    ))
    .unwrap()
    // Inside the container the rules are mounted at /etc/prometheus; here, beside it.
    .replace("/etc/prometheus/alerts.yml", "alerts.yml");
    std::fs::write(dir.path("prometheus.yml"), config).unwrap();
    std::fs::copy(RULES, dir.path("alerts.yml")).unwrap();
    let mut cmd = Command::new("promtool");
    cmd.args(["check", "config"])
        .arg(dir.path("prometheus.yml"));
    let out = run_bounded(
        cmd,
        Duration::from_secs(30),
        "apt-get install prometheus (.ci/run does)",
    );
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("SUCCESS: 8 rules found"),
        "{}",
        output_text(&out)
    );
}

/// The Grafana dashboard is a dashboard, and every metric it plots is one a running
/// Bulkhead exposes.
#[actix_web::test]
async fn grafana_dashboard_uses_only_exposed_metrics() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/ops/grafana/bulkhead.json"
    ))
    .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(dashboard["uid"], "bulkhead-overview");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| {
            t["expr"]
                .as_str()
                .expect("every target has an expr")
                .to_string()
        })
        .collect();
    assert!(exprs.len() >= 16, "{exprs:?}");

    let app = spawn_app(StoreKind::Postgres).await;
    let user = app.new_user().await;
    let _ = app.get("/api/v1/products").await;
    let _ = app
        .authed(reqwest::Method::GET, "/api/v1/users/me", &user.token)
        .send()
        .await
        .unwrap();
    let scrape = app.get("/metrics").await.text().await.unwrap();
    for expr in &exprs {
        for name in expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("bulkhead_") || w.starts_with("process_"))
        {
            let family = name.strip_suffix("_bucket").unwrap_or(name);
            assert!(
                scrape.contains(&format!("# TYPE {family} ")),
                "the dashboard plots {name}, which /metrics does not expose"
            );
        }
    }
}
