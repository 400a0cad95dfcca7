//! Operations endpoints: `/health` (the process runs), `/ready` (it should get traffic),
//! `/metrics` (Prometheus text exposition).

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use bulkhead_actors::CircuitState;
use serde_json::json;

use super::{resource, AppState};

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

async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"status": "ok"}))
}

async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let (store_ok, circuit) = state.svc.probe_store(STORE_CHECK_DEADLINE).await;
    let circuit_closed = circuit.is_none_or(|s| s == CircuitState::Closed);
    let shutting_down = state.lifecycle.is_shutting_down();
    let ok = store_ok && circuit_closed && !shutting_down;
    let checks = json!({
        "store": if store_ok { "ok" } else { "unavailable" },
        "circuit_postgres": circuit.map_or("none", |s| s.as_str()),
        "shutdown": if shutting_down { "in_progress" } else { "ok" },
    });
    let mut res = if ok {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    res.insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "status": if ok { "ok" } else { "unavailable" },
            "backend": state.svc.store.backend().as_str(),
            "checks": checks,
        }))
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match &state.metrics {
        Some(handle) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(crate::metrics::scrape(handle, &*state.svc.store)),
        None => HttpResponse::NotFound().finish(),
    }
}
