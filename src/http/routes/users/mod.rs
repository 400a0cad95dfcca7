//! `/api/v1/users`: one file per concern, siblings that never import each other (what
//! they share is in `common.rs`):
//!
//! - `register.rs`: `POST /users` (anonymous registration).
//! - `read.rs`: `GET /users/me` (the hot path: the cached body, no store call) and
//!   `GET /users/{id}`.
//! - `edit.rs`: `PATCH` and `DELETE /users/{id}` (self or admin, `If-Match`).
//! - `admin.rs`: the admin listing and status changes.

pub mod admin;
pub mod common;
pub mod edit;
pub mod read;
pub mod register;

use actix_web::web;

use super::resource::resource;

pub fn routes(cfg: &mut web::ServiceConfig) {
    // `/me` before `/{id}`: both match the path, and the first registered wins.
    cfg.service(
        resource("/api/v1/users", "GET, POST")
            .route(web::get().to(admin::list))
            .route(web::post().to(register::create)),
    )
    .service(
        resource("/api/v1/users/me", "GET, HEAD")
            .route(web::get().to(read::me))
            .route(web::head().to(read::me)),
    )
    .service(
        resource("/api/v1/users/{id}", "GET, HEAD, PATCH, DELETE")
            .route(web::get().to(read::get_one))
            .route(web::head().to(read::get_one))
            .route(web::patch().to(edit::patch))
            .route(web::delete().to(edit::delete)),
    )
    .service(
        resource("/api/v1/users/{id}/status", "POST").route(web::post().to(admin::set_status)),
    );
}
