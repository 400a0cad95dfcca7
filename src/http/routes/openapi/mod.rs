//! `GET /openapi.json`: the OpenAPI 3.1 description of every route, generated from the
//! handlers' `#[utoipa::path]` attributes and the DTOs' `ToSchema` derives, then
//! completed by [`problems::complete`] with what every operation shares: the problem
//! schema (its `code` enum is `ErrorCode::ALL`), each operation's error answers, the
//! bearer-JWT scheme and the common headers.
//!
//! **Invariant:** every route registered through `routes::resource::resource` is documented here;
//! `tests/api/openapi.rs` compares [`document`] with `http::served_routes` both ways.

mod problems;
mod rules;

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use utoipa::OpenApi;

use super::resource::resource;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bulkhead",
        description = "Actor-based, high-throughput REST API: users, tokens, products and \
                       orders. Every error is `application/problem+json` (RFC 9457) with a \
                       stable `code`. Paths under a configured gateway route \
                       (`[[gateway.routes]]`) are forwarded to upstream services and answer \
                       what the upstream answers; when the gateway cannot, the problem is \
                       502 `bad_gateway`, 504 `upstream_timeout`, 503 \
                       `dependency_unavailable` (the route's circuit is open) or 503 \
                       `overloaded` (its bulkhead is full).",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(
        super::health::health,
        super::health::ready,
        super::health::metrics,
        openapi_json,
        super::users::register::create,
        super::users::admin::list,
        super::users::read::me,
        super::users::read::get_one,
        super::users::edit::patch,
        super::users::edit::delete,
        super::users::admin::set_status,
        super::auth::token,
        super::auth::refresh,
        super::auth::logout,
        super::products::create,
        super::products::list,
        super::products::get,
        super::products::replace,
        super::products::patch,
        super::products::delete,
        super::orders::create,
        super::orders::list,
        super::orders::get,
        super::orders::cancel,
        super::overview::overview,
    ),
    tags(
        (name = "operations", description = "Health, readiness, metrics, this document"),
        (name = "users", description = "Accounts"),
        (name = "auth", description = "Access and refresh tokens"),
        (name = "products", description = "The catalogue"),
        (name = "orders", description = "Orders, idempotent creation"),
    )
)]
struct ApiDoc;

/// The complete document.
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    problems::complete(&mut doc);
    rules::state(&mut doc);
    doc
}

/// The serialized document, built once per process.
fn document_bytes() -> &'static [u8] {
    static DOC: OnceLock<Vec<u8>> = OnceLock::new();
    DOC.get_or_init(|| serde_json::to_vec(&document()).unwrap_or_default())
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/openapi.json", "GET").route(web::get().to(openapi_json)));
}

/// This document. Not under `/api/`, so never rate limited.
#[utoipa::path(
    get, path = "/openapi.json", operation_id = "openapi", tag = "operations",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", body = serde_json::Value))
)]
async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .content_type("application/json")
        .body(document_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_an_entry_in_the_error_table() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap_or_default();
                let id = id.strip_suffix("_head").unwrap_or(id);
                assert!(
                    problems::specific_codes(id).is_some(),
                    "{method} {path}: add `{id}` to problems::specific_codes"
                );
            }
        }
    }
}
