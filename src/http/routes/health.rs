//! Operations endpoints: `/health` (the process runs), `/ready` (it should get traffic),
//! `/metrics` (Prometheus text exposition).

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use bulkhead_actors::CircuitState;
use serde::Serialize;
use utoipa::ToSchema;

use super::resource::resource;
use crate::http::state::AppState;

/// How long `/ready` waits for the store before calling it unavailable.
const STORE_CHECK_DEADLINE: Duration = Duration::from_secs(2);

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/health", "GET, HEAD")
            .route(web::get().to(health))
            .route(web::head().to(health)),
    )
    .service(
        resource("/ready", "GET, HEAD")
            .route(web::get().to(ready))
            .route(web::head().to(ready)),
    )
    .service(resource("/metrics", "GET").route(web::get().to(metrics)));
}

/// `{"status":"ok"}`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

/// The readiness answer: `ok` or `unavailable`, with what was checked.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ok")]
    status: &'static str,
    /// `postgres` or `memory`.
    backend: &'static str,
    checks: ReadinessChecks,
}

#[derive(Serialize, ToSchema)]
pub struct ReadinessChecks {
    /// `ok` or `unavailable`.
    store: &'static str,
    /// `none` (no circuit: the in-memory store), `closed`, `open` or `half_open`.
    circuit_postgres: &'static str,
    /// `ok` or `in_progress`.
    shutdown: &'static str,
}

/// The process runs (no dependency checks).
#[utoipa::path(
    method(get, head), path = "/health", operation_id = "health", tag = "operations",
    security(()),
    responses((status = 200, description = "The process runs", body = Health))
)]
async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Health { status: "ok" })
}

/// Whether the instance should get traffic: the store answers, no circuit is open and
/// no shutdown is under way.
#[utoipa::path(
    method(get, head), path = "/ready", operation_id = "ready", tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Ready for traffic", body = Readiness),
        (status = 503, description = "Not ready: see `checks`", body = Readiness),
    )
)]
async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let (store_ok, circuit) = state.svc.probe_store(STORE_CHECK_DEADLINE).await;
    let circuit_closed = circuit.is_none_or(|s| s == CircuitState::Closed);
    let shutting_down = state.lifecycle.is_shutting_down();
    let ok = store_ok && circuit_closed && !shutting_down;
    let checks = ReadinessChecks {
        store: if store_ok { "ok" } else { "unavailable" },
        circuit_postgres: circuit.map_or("none", |s| s.as_str()),
        shutdown: if shutting_down { "in_progress" } else { "ok" },
    };
    let mut res = if ok {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    res.insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Readiness {
            status: if ok { "ok" } else { "unavailable" },
            backend: state.svc.backend().as_str(),
            checks,
        })
}

/// Prometheus text exposition (404 when metrics are disabled in the config).
#[utoipa::path(
    get, path = "/metrics", operation_id = "metrics", tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Prometheus text exposition, format 0.0.4",
            body = String, content_type = "text/plain"),
        (status = 404, description = "Metrics are disabled (`metrics.enabled = false`)"),
    )
)]
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match &state.metrics {
        Some(handle) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(crate::metrics::scrape(handle, &state.svc.pool_status())),
        None => HttpResponse::NotFound().finish(),
    }
}
