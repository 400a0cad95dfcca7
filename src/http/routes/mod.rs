//! The handlers, one file per resource, each registering its routes through
//! [`resource::resource`] and describing them for OpenAPI (`#[utoipa::path]`, collected
//! in `openapi/`). Users are a folder of sibling files that share only `users/common.rs`.
//! Handlers reach data only through `Services` (the store is not reachable from here).

pub mod auth;
pub mod health;
pub mod openapi;
pub mod orders;
pub mod products;
pub mod resource;
pub mod users;

use actix_web::web;

/// Register every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    health::routes(cfg);
    openapi::routes(cfg);
    users::routes(cfg);
    auth::routes(cfg);
    products::routes(cfg);
    orders::routes(cfg);
}
