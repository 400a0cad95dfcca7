//! The HTTP surface: the only place that knows actix-web, builds responses and turns
//! errors into problem+json.
//!
//! Middleware, outermost first (actix applies the last `wrap` outermost):
//! 1. [`request::middleware`]: request id, log span, problem rendering, access log; it
//!    must see every response, errors of inner layers included, so it is outermost.
//! 2. CORS: answers preflights itself, before authentication and rate limits see them.
//! 3. compression ([`compress::CompressIfAsked`]): inside the problem rendering, so error
//!    bodies are compressed too.
//! 4. [`auth::middleware`]: the caller, before rate limiting, which keys on it.
//! 5. [`ratelimit::middleware`]: per user or per IP; innermost, so a rejected token
//!    never spends a user's quota and a limited request never reaches a handler.

pub mod auth;
pub mod client_ip;
pub mod compress;
pub mod etag;
pub mod extract;
mod health;
pub mod openapi;
mod orders;
pub mod pagination;
pub mod problem;
mod products;
pub mod ratelimit;
pub mod request;
mod shop;
mod tokens;
pub mod user_patch;
pub mod users;
pub mod users_admin;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use actix_cors::Cors;
use actix_web::middleware::{from_fn, Condition};
use actix_web::{web, App, HttpResponse};

use crate::config::Config;
pub use crate::error::{ApiError, ErrorCode, FieldError};
use crate::service::Services;

/// Shared by every worker; cheap to clone.
pub struct AppState {
    pub config: Arc<Config>,
    pub svc: Services,
    pub lifecycle: Arc<Lifecycle>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// Process-wide lifecycle flags.
#[derive(Debug, Default)]
pub struct Lifecycle {
    shutting_down: AtomicBool,
}

impl Lifecycle {
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

/// A resource that answers 405 with `Allow` for the methods it does not route, and that
/// names its route template for metrics and the access log without an allocation.
///
/// Every route is registered through here, and here only: `allow` is the list of methods
/// it serves, recorded in [`served_routes`] so the OpenAPI test can compare the document
/// with what the app really serves.
pub fn resource(path: &'static str, allow: &'static str) -> actix_web::Resource {
    served_routes_table()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(path, allow);
    web::resource(path)
        .app_data(request::RouteLabel(path))
        .default_service(web::to(move || async move {
            Err::<HttpResponse, _>(ApiError::method_not_allowed(allow))
        }))
}

fn served_routes_table() -> &'static Mutex<BTreeMap<&'static str, &'static str>> {
    static ROUTES: OnceLock<Mutex<BTreeMap<&'static str, &'static str>>> = OnceLock::new();
    ROUTES.get_or_init(Mutex::default)
}

/// Every `(path template, method)` an app built in this process serves, as registered
/// through [`resource`] (empty until [`app`] has run once).
pub fn served_routes() -> Vec<(String, String)> {
    let table = served_routes_table()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    table
        .iter()
        .flat_map(|(path, allow)| {
            allow
                .split(',')
                .map(|m| (path.to_string(), m.trim().to_ascii_lowercase()))
        })
        .collect()
}

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
    App::new()
        .app_data(state)
        .app_data(extract::query_config())
        .app_data(extract::path_config())
        .wrap(from_fn(ratelimit::middleware))
        .wrap(from_fn(auth::middleware))
        .wrap(compress::CompressIfAsked)
        .wrap(Condition::new(
            !cors_origins.is_empty(),
            cors(&cors_origins),
        ))
        .wrap(from_fn(request::middleware))
        .configure(health::routes)
        .configure(openapi::routes)
        .configure(users::routes)
        .configure(tokens::routes)
        .configure(products::routes)
        .configure(orders::routes)
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::not_found())
        }))
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
