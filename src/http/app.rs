//! The application of one worker: shared state, extractor settings, the middleware stack
//! (the order and why: `middleware/mod.rs`) and every route.

use actix_cors::Cors;
use actix_web::middleware::{from_fn, Condition};
use actix_web::{web, App};

use super::middleware::{authenticate, compress, ratelimit, request};
use super::routes;
use super::state::AppState;
use super::support::extract;

/// Build the application for one worker.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let cors_origins = state.config.server.cors_allowed_origins.clone();
    let compress_min_bytes = state.config.server.compress_min_bytes;
    App::new()
        .app_data(state)
        .app_data(extract::query_config())
        .app_data(extract::path_config())
        .wrap(from_fn(ratelimit::middleware))
        .wrap(from_fn(authenticate::middleware))
        .wrap(compress::CompressIfAsked::new(compress_min_bytes))
        .wrap(Condition::new(
            !cors_origins.is_empty(),
            cors(&cors_origins),
        ))
        .wrap(from_fn(request::middleware))
        .configure(routes::configure)
        // Gateway routes are tried before the 404 answer.
        .default_service(web::to(routes::gateway::proxy))
}

/// CORS for the configured origins: the API's methods and headers, and the response
/// headers clients need to read (request id, rate limits, ETag, Location).
fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            "authorization",
            "content-type",
            "idempotency-key",
            "if-match",
            "if-none-match",
            "x-request-id",
        ])
        .expose_headers([
            "x-request-id",
            "etag",
            "location",
            "retry-after",
            "ratelimit",
            "ratelimit-policy",
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "idempotent-replayed",
        ])
        .max_age(600);
    for origin in origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}
