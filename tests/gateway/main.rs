//! The gateway against real upstream HTTP servers the tests start and control
//! (`tests/common/upstream.rs`): forwarding, identity, deadlines, retries and their budget, circuits,
//! outlier ejection and the overview. One test binary of its own: `cargo test --test
//! gateway`.

#[path = "../api/helpers/mod.rs"]
mod helpers;
#[allow(dead_code)] // shared with tests/reload: not every binary uses every helper
#[path = "../common/upstream.rs"]
mod upstream;

mod fairness;
mod forwarding;
mod identity;
mod overview;
mod passthrough;
mod resilience;

use bulkhead::config::{Config, RouteAuth, RouteConfig, Secret};
use helpers::{spawn_app_with, StoreKind, TestApp};

pub const IDENTITY_SECRET: &str = "gateway-identity-secret-0123456789abcdef";

/// A route with the contract's defaults.
pub fn route(name: &str, prefix: &str, upstreams: &[&upstream::Upstream]) -> RouteConfig {
    RouteConfig {
        name: name.into(),
        prefix: prefix.into(),
        upstreams: upstreams.iter().map(|u| u.url.clone()).collect(),
        methods: Vec::new(),
        auth: RouteAuth::Optional,
        strip_prefix: false,
        timeout_ms: 5_000,
        retries: 2,
    }
}

/// A Bulkhead on the memory store with these routes; `tweak` adjusts the rest.
pub async fn spawn_gateway(routes: Vec<RouteConfig>, tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with(StoreKind::Memory, |c| {
        c.gateway.identity_secret = Some(Secret::new(IDENTITY_SECRET));
        c.gateway.routes = routes;
        tweak(c);
    })
    .await
}

/// The value of one sample of `/metrics`, `0` when absent.
pub async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}
